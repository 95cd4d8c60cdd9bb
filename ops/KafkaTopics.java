// Creates, lists or deletes Waybill's topics in one JVM start (ops/kafka runs it
// with Java's single-file source launcher and the cached Kafka jars on the
// class path; see design.md §3 for the topics).
//
//   java -cp '.cache/kafka-jars/*' ops/KafkaTopics.java MODE [options]
//
//   MODE        create (default): create the missing topics, leave existing ones
//               alone (a mismatch with the wanted layout is only warned about),
//               then wait until every partition has a leader;
//               list: one line per topic of the prefix with partitions and
//               cleanup.policy; delete: delete the topics of the prefix.
//   --bootstrap HOST:PORT   default 127.0.0.1:9092
//   --prefix P              default orders.
//   --partitions N          default 6 (the dlq always gets 1)
//   --timeout-ms N          overall budget, default 60000
//
// Exit status: 0 ok, 1 Kafka error or timeout, 2 usage.

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class KafkaTopics {
    record Spec(String name, int partitions, Map<String, String> configs) {}

    static String bootstrap = "127.0.0.1:9092";
    static String prefix = "orders.";
    static int partitions = 6;
    static long timeoutMs = 60_000;
    static long deadline;

    public static void main(String[] args) {
        String mode = "create";
        try {
            int i = 0;
            if (args.length > 0 && !args[0].startsWith("--")) mode = args[i++];
            for (; i < args.length; i++) {
                String a = args[i];
                if (a.equals("-h") || a.equals("--help")) { usage(0); }
                if (i + 1 >= args.length) throw new IllegalArgumentException("missing value for " + a);
                String v = args[++i];
                switch (a) {
                    case "--bootstrap" -> bootstrap = v;
                    case "--prefix" -> prefix = v;
                    case "--partitions" -> partitions = Integer.parseInt(v);
                    case "--timeout-ms" -> timeoutMs = Long.parseLong(v);
                    default -> throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (partitions < 1) throw new IllegalArgumentException("--partitions must be >= 1");
            if (!List.of("create", "list", "delete").contains(mode))
                throw new IllegalArgumentException("unknown mode " + mode);
        } catch (IllegalArgumentException e) {
            System.err.println("KafkaTopics: " + e.getMessage());
            usage(2);
        }
        deadline = System.currentTimeMillis() + timeoutMs;

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "waybill-ops-topics");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(Math.max(timeoutMs, 1000)));
        int rc;
        try (Admin admin = Admin.create(p)) {
            rc = switch (mode) {
                case "create" -> create(admin);
                case "delete" -> delete(admin);
                default -> list(admin);
            };
        } catch (TimeoutException e) {
            System.err.println("KafkaTopics: timed out after " + timeoutMs + " ms talking to " + bootstrap);
            rc = 1;
        } catch (Exception e) {
            Throwable c = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            System.err.println("KafkaTopics: " + mode + " failed against " + bootstrap + ": " + c);
            rc = 1;
        }
        System.exit(rc);
    }

    static void usage(int rc) {
        (rc == 0 ? System.out : System.err).println(
            "usage: KafkaTopics [create|list|delete] [--bootstrap HOST:PORT] [--prefix P]"
            + " [--partitions N] [--timeout-ms N]");
        System.exit(rc);
    }

    static List<Spec> specs() {
        return List.of(
            new Spec(prefix + "events", partitions, Map.of()),
            new Spec(prefix + "commands", partitions, Map.of()),
            new Spec(prefix + "ledger", partitions, Map.of()),
            new Spec(prefix + "status", partitions,
                     Map.of(TopicConfig.CLEANUP_POLICY_CONFIG, TopicConfig.CLEANUP_POLICY_COMPACT)),
            new Spec(prefix + "dlq", 1, Map.of()));
    }

    static List<String> names() {
        return specs().stream().map(Spec::name).toList();
    }

    static long left() throws TimeoutException {
        long l = deadline - System.currentTimeMillis();
        if (l <= 0) throw new TimeoutException();
        return l;
    }

    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(left(), TimeUnit.MILLISECONDS);
    }

    static int create(Admin admin) throws Exception {
        List<NewTopic> wanted = new ArrayList<>();
        for (Spec s : specs())
            wanted.add(new NewTopic(s.name(), Optional.of(s.partitions()), Optional.of((short) 1))
                .configs(s.configs()));
        Map<String, KafkaFuture<Void>> res = admin.createTopics(wanted).values();
        List<String> existed = new ArrayList<>();
        for (Spec s : specs()) {
            try {
                get(res.get(s.name()));
                System.out.println("created " + s.name() + " partitions=" + s.partitions()
                    + (s.configs().isEmpty() ? "" : " " + fmt(s.configs())));
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) throw e;
                existed.add(s.name());
            }
        }
        Map<String, TopicDescription> d = waitForLeaders(admin, names());
        if (!existed.isEmpty()) {
            Map<String, String> policy = cleanupPolicies(admin, existed);
            for (Spec s : specs()) {
                if (!existed.contains(s.name())) continue;
                int n = d.get(s.name()).partitions().size();
                String cp = policy.get(s.name());
                System.out.println("exists  " + s.name() + " partitions=" + n + " cleanup.policy=" + cp);
                if (n != s.partitions())
                    System.err.println("KafkaTopics: warning: " + s.name() + " has " + n
                        + " partitions, wanted " + s.partitions() + " (left alone)");
                String want = s.configs().getOrDefault(TopicConfig.CLEANUP_POLICY_CONFIG,
                                                       TopicConfig.CLEANUP_POLICY_DELETE);
                if (!want.equals(cp))
                    System.err.println("KafkaTopics: warning: " + s.name() + " has cleanup.policy="
                        + cp + ", wanted " + want + " (left alone)");
            }
        }
        return 0;
    }

    // createTopics completes once the controller has committed the topic; wait
    // until the broker's metadata also shows a leader for every partition, so
    // that a client started right after `ops/kafka up` can produce at once.
    static Map<String, TopicDescription> waitForLeaders(Admin admin, Collection<String> topics)
            throws Exception {
        while (true) {
            Map<String, TopicDescription> d = null;
            try {
                d = get(admin.describeTopics(topics).allTopicNames());
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw e;
            }
            if (d != null && d.values().stream().allMatch(t ->
                    t.partitions().stream().allMatch((TopicPartitionInfo pi) -> pi.leader() != null)))
                return d;
            Thread.sleep(Math.min(100, left()));
        }
    }

    static Map<String, String> cleanupPolicies(Admin admin, Collection<String> topics) throws Exception {
        List<ConfigResource> rs = topics.stream()
            .map(t -> new ConfigResource(ConfigResource.Type.TOPIC, t)).toList();
        Map<ConfigResource, Config> cs = get(admin.describeConfigs(rs).all());
        Map<String, String> out = new LinkedHashMap<>();
        for (var e : cs.entrySet()) {
            ConfigEntry ce = e.getValue().get(TopicConfig.CLEANUP_POLICY_CONFIG);
            out.put(e.getKey().name(), ce == null ? "?" : ce.value());
        }
        return out;
    }

    static int list(Admin admin) throws Exception {
        List<String> present = new ArrayList<>(get(admin.listTopics().names()));
        present.removeIf(t -> !t.startsWith(prefix));
        present.sort(null);
        if (present.isEmpty()) {
            System.err.println("KafkaTopics: no topics with prefix '" + prefix + "' on " + bootstrap);
            return 0;
        }
        Map<String, TopicDescription> d = get(admin.describeTopics(present).allTopicNames());
        Map<String, String> policy = cleanupPolicies(admin, present);
        for (String t : present)
            System.out.println(t + " partitions=" + d.get(t).partitions().size()
                + " cleanup.policy=" + policy.get(t));
        return 0;
    }

    static int delete(Admin admin) throws Exception {
        Map<String, KafkaFuture<Void>> res = admin.deleteTopics(names()).topicNameValues();
        for (String t : names()) {
            try {
                get(res.get(t));
                System.out.println("deleted " + t);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw e;
                System.out.println("absent  " + t);
            }
        }
        return 0;
    }

    static String fmt(Map<String, String> m) {
        StringBuilder b = new StringBuilder();
        m.forEach((k, v) -> b.append(b.length() == 0 ? "" : " ").append(k).append('=').append(v));
        return b.toString();
    }
}
