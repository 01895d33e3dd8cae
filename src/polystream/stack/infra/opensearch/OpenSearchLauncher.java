// Minimal single-node OpenSearch launcher: runs org.opensearch.node.Node in the foreground with the
// bundled modules loaded as classpath plugins (no distribution, no security manager, no bootstrap checks).
//
//   java [jvm flags] -cp '{build_dir}/lib/*:{build_dir}/classes' OpenSearchLauncher \
//        --http-port P --transport-port P --home DIR --data DIR --logs DIR [-Ekey=value ...]
//
// Stops cleanly on SIGTERM (shutdown hook closes the node, then log4j).
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public final class OpenSearchLauncher {
    public static void main(String[] args) throws Exception {
        Path home = null, data = null, logs = null;
        String httpPort = null, transportPort = null;
        List<String[]> extra = new java.util.ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.startsWith("-E") && a.indexOf('=') > 2) {
                extra.add(new String[] { a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1) });
                continue;
            }
            if (i + 1 >= args.length) usage("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--http-port": httpPort = v; break;
                case "--transport-port": transportPort = v; break;
                case "--home": home = Path.of(v).toAbsolutePath(); break;
                case "--data": data = Path.of(v).toAbsolutePath(); break;
                case "--logs": logs = Path.of(v).toAbsolutePath(); break;
                default: usage("unknown argument " + a);
            }
        }
        if (home == null || data == null || logs == null || httpPort == null || transportPort == null) usage("missing argument");
        for (Path p : List.of(home, data, logs)) Files.createDirectories(p);

        // Must be set before log4j / netty / jna classes initialise (same values as the official distribution).
        setDefault("ps.opensearch.logs", logs.toString());
        setDefault("log4j.shutdownHookEnabled", "false");
        setDefault("log4j2.disable.jmx", "true");
        setDefault("io.netty.noUnsafe", "true");
        setDefault("io.netty.noKeySetOptimization", "true");
        setDefault("io.netty.recycler.maxCapacityPerThread", "0");
        setDefault("io.netty.allocator.numDirectArenas", "0");
        setDefault("jna.nosys", "true");

        org.opensearch.common.settings.Settings.Builder b = org.opensearch.common.settings.Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", logs.toString())
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        for (String[] kv : extra) b.put(kv[0], kv[1]);

        org.opensearch.env.Environment env = org.opensearch.node.InternalSettingsPreparer.prepareEnvironment(
            b.build(), Collections.emptyMap(), null, () -> "node-1");
        List<Class<? extends org.opensearch.plugins.Plugin>> plugins = List.of(
            org.opensearch.transport.Netty4Plugin.class,
            org.opensearch.analysis.common.CommonAnalysisPlugin.class,
            org.opensearch.painless.PainlessPlugin.class,
            org.opensearch.index.reindex.ReindexPlugin.class,
            org.opensearch.index.mapper.MapperExtrasPlugin.class);
        org.opensearch.node.Node node = new org.opensearch.node.Node(env, plugins, true) { };

        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, TimeUnit.SECONDS);
            } catch (Throwable t) {
                t.printStackTrace();
            } finally {
                closed.countDown();
                org.apache.logging.log4j.LogManager.shutdown();
            }
        }, "opensearch-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            org.apache.logging.log4j.LogManager.getLogger(OpenSearchLauncher.class).error("node failed to start", t);
            t.printStackTrace();
            System.exit(1); // runs the shutdown hook, which closes the node
        }
        closed.await(); // non-daemon keep-alive; OpenSearch's own threads are daemons
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) System.setProperty(key, value);
    }

    private static void usage(String why) {
        System.err.println("OpenSearchLauncher: " + why + "\nusage: OpenSearchLauncher --http-port P --transport-port P"
            + " --home DIR --data DIR --logs DIR [-Ekey=value ...]");
        System.exit(2);
    }
}
