package dev.coil.engine.parallel;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Virtual devices of one thread each, made once per count for the whole test run (their threads are daemons). */
final class TestDevices {

    private static final Map<Integer, VirtualDevices> DEVICES = new ConcurrentHashMap<>();

    private TestDevices() {
    }

    static VirtualDevices of(int count) {
        return DEVICES.computeIfAbsent(count, n -> VirtualDevices.cpu(n, 1));
    }
}
