package dev.coil.engine.model;

import dev.coil.engine.runner.LoadedModel;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Fixture models loaded once per test run (loading maps the files; the model itself is stateless). */
public final class TestModels {

    private static final Map<String, LoadedModel> LOADED = new ConcurrentHashMap<>();

    private TestModels() {
    }

    public static LoadedModel load(String fixture) {
        return LOADED.computeIfAbsent(fixture, name -> LoadedModel.load(Fixtures.folder(name)));
    }

    static void closeAll() {
        LOADED.values().forEach(LoadedModel::close);
        LOADED.clear();
    }
}
