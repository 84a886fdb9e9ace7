package dev.coil.server.cli;

import dev.coil.engine.load.CheckpointException;
import dev.coil.engine.load.HubModel;
import dev.coil.engine.load.WeightStorage;
import dev.coil.engine.runner.Backends;
import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.LoadedModel;
import dev.coil.engine.runner.ScanPrecision;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** --model (a folder, or a Hub model with --revision and --download-dir), --threads, --devices and --mmap, shared by every command that loads a model. */
public final class ModelOptions {

    @Option(names = "--model", paramLabel = "DIR|ORG/NAME", defaultValue = "${env:COIL_MODEL}",
            description = "Hugging Face model folder (config.json, safetensors, tokenizer.json), or the name of a"
                    + " model on the Hugging Face Hub (ORG/NAME): found in, or downloaded to, the cache huggingface_hub"
                    + " keeps ($HF_HUB_CACHE or $HF_HOME/hub; $HF_TOKEN for gated models, HF_HUB_OFFLINE=1 for the"
                    + " cache alone). Default: $COIL_MODEL, else the bundled demo model, models/coil-demo.")
    String model;

    @Option(names = "--revision", paramLabel = "REV",
            description = "With a Hub model's name: the branch, tag or commit to serve (default: main).")
    String revision;

    @Option(names = "--trust-remote-code",
            description = "Accepted as vLLM takes it, and changes nothing: Coil runs no code from a model folder.")
    boolean trustRemoteCode;

    @Option(names = "--download-dir", paramLabel = "DIR",
            description = "With a Hub model's name: the Hub cache to find it in and download it to, instead of"
                    + " $HF_HUB_CACHE or $HF_HOME/hub (vLLM's flag).")
    Path downloadDirectory;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: all cores).")
    Integer threads;

    @Option(names = "--devices", paramLabel = "LIST", defaultValue = "auto",
            description = "Where the model runs: " + Devices.HELP + ". auto picks CUDA when a GPU and the kernels"
                    + " are present, else the CPU (default ${DEFAULT-VALUE}).")
    String devices;

    @Option(names = "--mmap",
            description = "On the CPU, read the weights in place from the memory-mapped safetensors files instead of"
                    + " a copy in memory on huge pages: starts sooner and shares the page cache with other processes,"
                    + " decodes slower. A GPU always reads them mapped (it copies them once, to the device).")
    boolean mmap;

    @Option(names = "--ssd-precision", paramLabel = "P", defaultValue = "f32",
            description = "The Mamba-2 SSD scan's tensor-core products on a GPU (prefill): f32 (three tf32 products"
                    + " each, about float32's error) or tf32 (one each, as PyTorch's allow_tf32: logits about 1e-3"
                    + " off, relative to their scale; long prompts prefill 9-20%% faster on an H100). The CPU"
                    + " always scans in f32"
                    + " (default ${DEFAULT-VALUE}).")
    String ssdPrecision;

    /** The parsed --devices (auto still unresolved). */
    public Devices devices() {
        return Devices.parse(devices);
    }

    /** The parsed --ssd-precision. */
    public ScanPrecision scanPrecision() {
        return ScanPrecision.parse(ssdPrecision);
    }

    /**
     * The model named by the command's argument rather than --model (serve's MODEL, as vllm serve takes
     * it); with --model also given, the two must agree.
     */
    void givenInPlace(String name, boolean flagGiven) {
        if (flagGiven && !name.equals(model)) {
            throw new IllegalArgumentException("the model is given twice: " + name + " and --model " + model);
        }
        model = name;
        folder = null;
    }

    /** The folder {@link #folder()} found, once found (a Hub model is looked up and downloaded once). */
    private Path folder;

    /**
     * The folder to load: --model where it names a folder here, else the Hub model it names (from the
     * cache, downloaded where it lacks it); without --model, the bundled demo model next to the launcher.
     */
    public Path folder() {
        if (folder == null) {
            folder = findFolder();
        }
        return folder;
    }

    /** The name of the Hub model --model names, or null where it names a folder here (or is not given). */
    public String hubModel() {
        return model != null && !Files.exists(Path.of(model)) && HubModel.isRepositoryName(model) ? model : null;
    }

    /**
     * A folder with the model's config.json and tokenizer files, for what is read before the weights
     * load: {@link #folder()}, except that a Hub model's weights are not downloaded yet (serve listens
     * before it downloads them).
     */
    public Path configurationFolder() {
        return folder != null || hubModel() == null ? folder() : fromHub(false);
    }

    /**
     * The Hub model's folder in the cache, with its weights or only what precedes them; an error says
     * too that no folder of that name is here.
     */
    private Path fromHub(boolean withWeights) {
        try {
            return withWeights ? HubModel.resolve(model, revision, hubSettings(), System.err::println)
                    : HubModel.resolveConfiguration(model, revision, hubSettings(), System.err::println);
        } catch (CheckpointException e) {
            throw new CheckpointException(e.getMessage() + " No folder " + model + " is here either.", e);
        }
    }

    /** The model as given, for messages: the Hub model's name, or the folder (found without downloading). */
    public String description() {
        return hubModel() != null ? hubModel() + " (Hugging Face Hub)" : folder().toString();
    }

    private HubModel.Settings hubSettings() {
        HubModel.Settings settings = HubModel.Settings.fromEnvironment();
        return downloadDirectory == null ? settings
                : new HubModel.Settings(settings.endpoint(), downloadDirectory, settings.token(), settings.offline());
    }

    private Path findFolder() {
        if (hubModel() != null) {
            return fromHub(true);
        }
        if (revision != null || downloadDirectory != null) {
            throw new IllegalArgumentException((revision != null ? "--revision" : "--download-dir")
                    + " is for a model on the Hugging Face Hub; --model " + (model == null ? "is not given" : model
                    + " is a folder"));
        }
        if (model != null) {
            return Path.of(model);
        }
        Path home = Path.of(System.getProperty("coil.home", "."));
        Path bundled = home.resolve("models").resolve("coil-demo");
        if (!Files.isDirectory(bundled)) {
            throw new IllegalArgumentException("no --model given and the bundled demo model (" + bundled
                    + ") is not there; pass --model DIR with a Hugging Face model folder.");
        }
        return bundled;
    }

    /** The model, its weights kept where {@code devices} (resolved) read them best, or mapped with --mmap. */
    public LoadedModel load(Devices devices) {
        return LoadedModel.load(folder(), weightStorage(devices));
    }

    /** Where the weights are kept on {@code devices} (resolved), --mmap read. */
    public WeightStorage weightStorage(Devices devices) {
        return Backends.weightStorage(devices, mmap);
    }

    /** --threads, else every core; refuses a count below 1. */
    public int threads() {
        return threads(threads);
    }

    /** {@code threads}, else every core; refuses a count below 1 (the CPU ops would take it as 1, silently). */
    static int threads(Integer threads) {
        if (threads == null) {
            return Runtime.getRuntime().availableProcessors();
        }
        return atLeast("--threads", threads, 1);
    }

    /** {@code value}, when it is at least {@code min}; else an error naming the option and its range. */
    static int atLeast(String option, int value, int min) {
        if (value < min) {
            throw new IllegalArgumentException(option + " must be at least " + min + ", got " + value);
        }
        return value;
    }
}
