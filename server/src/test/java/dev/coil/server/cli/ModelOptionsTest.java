package dev.coil.server.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** --model: a folder here wins over a Hub name of the same shape; --revision is for a Hub name only. */
class ModelOptionsTest {

    @TempDir
    Path directory;

    @Test
    void aFolderHereIsLoadedAndAnOtherNameIsTheHubs() throws Exception {
        // A relative folder of the shape organization/name, as models/coil-demo has, is the folder.
        Path relative = Path.of("target", "model-options-test");
        Files.createDirectories(relative);
        ModelOptions folder = options("target/model-options-test", null);
        assertThat(folder.hubModel()).isNull();
        assertThat(folder.folder()).isEqualTo(relative);

        assertThat(options("some-org/some-model", null).hubModel()).isEqualTo("some-org/some-model");
        assertThat(options(directory.toString(), null).hubModel()).isNull();
        assertThat(options(null, null).hubModel()).isNull();
    }

    @Test
    void aRevisionOrADownloadFolderNeedsAHubName() {
        assertThatThrownBy(() -> options(directory.toString(), "v1").folder())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("--revision is for a model on the Hugging Face Hub");
        ModelOptions downloading = options(directory.toString(), null);
        downloading.downloadDirectory = directory;
        assertThatThrownBy(downloading::folder).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("--download-dir is for a model on the Hugging Face Hub");
    }

    @Test
    void aModelGivenInPlaceOfTheFlagIsTheModel() {
        ModelOptions options = options(null, null);
        options.givenInPlace(directory.toString(), false);
        assertThat(options.folder()).isEqualTo(directory);
        ModelOptions same = options(directory.toString(), null);
        same.givenInPlace(directory.toString(), true);
        assertThat(same.folder()).isEqualTo(directory);
        ModelOptions fromEnvironment = options("some-org/default", null);
        fromEnvironment.givenInPlace(directory.toString(), false);
        assertThat(fromEnvironment.folder()).as("over $COIL_MODEL").isEqualTo(directory);
        assertThatThrownBy(() -> options("a-org/a", null).givenInPlace("b-org/b", true))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("given twice");
    }

    private static ModelOptions options(String model, String revision) {
        ModelOptions options = new ModelOptions();
        options.model = model;
        options.revision = revision;
        return options;
    }
}
