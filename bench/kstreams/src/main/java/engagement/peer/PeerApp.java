package engagement.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of `make bench` (issue 18): the counting rules of bench/apps/quix_app.py
 * in the Processor API.
 *
 * <p>Records of every input topic are re-keyed {@code org:contact} (selectKey + repartition, so a
 * record with another key or none lands on its contact's task), then one processor per task keeps
 * each contact in a persistent RocksDB key-value store with its changelog (caching on): the last
 * 256 event ids (a repeat is ignored) and every message of the 90-day window with its channel,
 * earliest dispatch and delivered / opened / clicked / replied flags. After each event it forwards
 * the contact's figures per channel to {@code <prefix>peer.kstreams.results}. At-least-once, one
 * stream thread, 5 s commits. No rates, tiers, subscriptions, expiry without events, snapshots or
 * dead letters (an unreadable record is skipped).
 *
 * <p>Configured by BENCH_* environment variables, like the Python apps.
 */
public final class PeerApp {
  static final ObjectMapper JSON = new ObjectMapper();
  static final long WINDOW_MS = 90L * 86_400_000L;
  static final int SEEN_MAX = 256;
  static final String STORE = "contacts";

  static String env(String name) {
    String value = System.getenv("BENCH_" + name);
    if (value == null) {
      throw new IllegalStateException("BENCH_" + name + " is not set");
    }
    return value;
  }

  static int flag(String kind) {
    switch (kind) {
      case "delivery": return 1;
      case "open": return 2;
      case "click": return 4;
      case "reply": return 8;
      default: return 0;
    }
  }

  /** Per contact: dedupe ring, window messages, figures out. */
  static final class Counter implements Processor<String, byte[], String, byte[]> {
    private KeyValueStore<String, byte[]> store;
    private ProcessorContext<String, byte[]> context;

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> record) {
      try {
        JsonNode event = JSON.readTree(record.value());
        String kind = event.path("_kind").asText();
        byte[] stored = store.get(record.key());
        ObjectNode state = stored == null ? JSON.createObjectNode() : (ObjectNode) JSON.readTree(stored);
        ArrayNode seen = state.has("seen") ? (ArrayNode) state.get("seen") : state.putArray("seen");
        String eventId = event.path("event_id").asText();
        for (JsonNode id : seen) {
          if (id.asText().equals(eventId)) {
            return;
          }
        }
        seen.add(eventId);
        if (seen.size() > SEEN_MAX) {
          seen.remove(0);
        }
        int bit = flag(kind);
        if (kind.equals("dispatch") || bit != 0) {
          ObjectNode messages = state.has("m") ? (ObjectNode) state.get("m") : state.putObject("m");
          String messageId = event.path("message_id").asText();
          long at = OffsetDateTime.parse(event.path("occurred_at").asText()).toInstant().toEpochMilli();
          ArrayNode m = messages.has(messageId) ? (ArrayNode) messages.get(messageId) : null;
          if (m == null) {
            m = messages.putArray(messageId);
            m.add(event.path("channel").asText());
            m.addNull();
            m.add(0);
          }
          if (kind.equals("dispatch")) {
            if (m.get(1).isNull() || at < m.get(1).asLong()) {
              m.set(0, event.path("channel").asText());
              m.set(1, at);
            }
          } else {
            m.set(2, m.get(2).asInt() | bit);
          }
          long start = System.currentTimeMillis() - WINDOW_MS;
          ObjectNode figures = JSON.createObjectNode();
          Iterator<Map.Entry<String, JsonNode>> it = messages.fields();
          List<String> expired = new ArrayList<>();
          while (it.hasNext()) {
            Map.Entry<String, JsonNode> entry = it.next();
            JsonNode r = entry.getValue();
            if (r.get(1).isNull()) {
              continue; // waits for its dispatch
            }
            if (r.get(1).asLong() < start) {
              expired.add(entry.getKey());
              continue;
            }
            int flags = r.get(2).asInt();
            ArrayNode f = figures.has(r.get(0).asText())
                ? (ArrayNode) figures.get(r.get(0).asText())
                : figures.putArray(r.get(0).asText()).add(0).add(0).add(0).add(0).add(0);
            f.set(0, f.get(0).asInt() + 1);
            f.set(1, f.get(1).asInt() + (flags != 0 ? 1 : 0));
            f.set(2, f.get(2).asInt() + ((flags & 2) != 0 ? 1 : 0));
            f.set(3, f.get(3).asInt() + ((flags & 4) != 0 ? 1 : 0));
            f.set(4, f.get(4).asInt() + ((flags & 8) != 0 ? 1 : 0));
          }
          messages.remove(expired);
          ObjectNode out = JSON.createObjectNode();
          out.put("contact", record.key());
          out.set("figures", figures);
          context.forward(record.withValue(JSON.writeValueAsBytes(out)));
        }
        store.put(record.key(), JSON.writeValueAsBytes(state));
      } catch (Exception e) {
        // an unreadable record is skipped, as the quixstreams peer does
      }
    }
  }

  public static void main(String[] args) throws Exception {
    String prefix = env("PREFIX");
    List<String> topics = Arrays.asList(env("TOPICS").split(","));
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, env("APP_ID"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, env("BOOTSTRAP"));
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 5000);
    props.put(StreamsConfig.STATE_DIR_CONFIG, env("DATADIR"));
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    StreamsBuilder builder = new StreamsBuilder();
    builder.addStateStore(
        Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray())
            .withCachingEnabled());
    KStream<String, byte[]> merged = null;
    for (String topic : topics) {
      String kind = topic.substring(prefix.length());
      KStream<String, byte[]> one =
          builder.stream(topic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
              .flatMap((key, value) -> {
                try {
                  ObjectNode event = (ObjectNode) JSON.readTree(value);
                  event.put("_kind", kind);
                  String contact = event.path("org_id").asText() + ":" + event.path("contact_id").asText();
                  return List.of(KeyValue.pair(contact, JSON.writeValueAsBytes(event)));
                } catch (Exception e) {
                  return List.of();
                }
              });
      merged = merged == null ? one : merged.merge(one);
    }
    merged
        .repartition(Repartitioned.with(Serdes.String(), Serdes.ByteArray()).withName("contact"))
        .process(Counter::new, STORE)
        .to(prefix + "peer.kstreams.results", Produced.with(Serdes.String(), Serdes.ByteArray()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch done = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      done.countDown();
    }));
    streams.start();
    done.await();
  }
}
