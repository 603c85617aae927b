// A JDK `com.sun.net.httpserver.HttpServer` for the probe's tests: no libraries, no bytewatch,
// no per-request logging.
//
//   javac -d OUT JavaServer.java && java -cp OUT JavaServer PORT
//
// The endpoints and their bodies are the same in every runtime (see README.md beside this file).
// Requests are served on a fixed pool of threads named "http-worker-N", so the probe sees those
// names (not "java") as the comm of the threads that read and write the sockets.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class JavaServer {
    private static final int MAX_BIG_BYTES = 64 * 1024 * 1024;
    private static final int MAX_PARTS = 10000;
    private static final int MAX_SLEEP_MS = 60000;
    private static final int CLOSE_MID_ANNOUNCED = 100000;
    private static final int CLOSE_MID_SENT = 1000;
    private static final int WORKERS = 16;
    private static final Pattern USER_PATH = Pattern.compile("/users/(0|[1-9][0-9]{0,17})");
    private static final Pattern NUMBER = Pattern.compile("[0-9]{1,9}");
    private static final Set<String> KNOWN_PATHS = Set.of(
        "/health", "/hello", "/payments", "/fail", "/big", "/chunked", "/slow", "/close-mid");
    private static final String PAYMENT_REFUSED =
        "{\"error\":\"insufficient_balance\",\"message\":\"balance too low for this payment\"}";
    private static final String BAD_REQUEST = "{\"error\":\"bad_request\"}";

    private JavaServer() {}

    static byte[] bigBody(int n) {
        byte[] body = new byte[n];
        Arrays.fill(body, (byte) 'x');
        if (n >= 11) {
            byte[] head = "{\"data\":\"".getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(head, 0, body, 0, head.length);
            body[n - 2] = '"';
            body[n - 1] = '}';
        }
        return body;
    }

    static String chunkPart(int i, int parts) {
        return (i == 0 ? "[" : ",") + "{\"part\":" + i + "}" + (i == parts - 1 ? "]" : "");
    }

    /** The parameter's value, its default when absent, or -1 when malformed or too large. */
    static int intParam(String query, String name, int fallback, int max) {
        if (query == null) {
            return fallback;
        }
        for (String pair : query.split("&")) {
            int eq = pair.indexOf('=');
            String key = eq < 0 ? pair : pair.substring(0, eq);
            if (!key.equals(name)) {
                continue;
            }
            String raw = eq < 0 ? "" : pair.substring(eq + 1);
            if (!NUMBER.matcher(raw).matches()) {
                return -1;
            }
            int value = Integer.parseInt(raw);
            return value <= max ? value : -1;
        }
        return fallback;
    }

    static void send(HttpExchange ex, int status, byte[] body, String type) throws IOException {
        ex.getResponseHeaders().set("Content-Type", type);
        // -1 tells HttpServer "no body" and it still announces Content-length: 0.
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    static void send(HttpExchange ex, int status, String body) throws IOException {
        send(ex, status, body.getBytes(StandardCharsets.UTF_8), "application/json");
    }

    static void sendChunked(HttpExchange ex, int parts) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(200, 0); // 0 means "length unknown": chunked
        try (OutputStream out = ex.getResponseBody()) {
            for (int i = 0; i < parts; i++) {
                out.write(chunkPart(i, parts).getBytes(StandardCharsets.US_ASCII));
                out.flush(); // each flush ends one chunk
            }
        }
    }

    static void closeMid(HttpExchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(200, CLOSE_MID_ANNOUNCED);
        OutputStream out = ex.getResponseBody();
        out.write(bigBody(CLOSE_MID_ANNOUNCED), 0, CLOSE_MID_SENT);
        out.flush();
        // An exception out of a handler makes HttpServer close the connection: exactly the
        // truncated response this endpoint is for. (Closing the short stream alone does not.)
        throw new IOException("closing the connection mid-body, on purpose");
    }

    static void handle(HttpExchange ex) throws IOException {
        try (InputStream in = ex.getRequestBody()) {
            in.readAllBytes();
        }
        URI uri = ex.getRequestURI();
        String path = uri.getRawPath();
        String query = uri.getRawQuery();
        String method = ex.getRequestMethod();
        boolean get = method.equals("GET");
        Matcher user = USER_PATH.matcher(path);
        boolean isUser = user.matches();
        if (path.equals("/health") && get) {
            send(ex, 200, "ok".getBytes(StandardCharsets.US_ASCII), "text/plain");
        } else if (path.equals("/hello") && get) {
            send(ex, 200, "{\"message\":\"hello\"}");
        } else if (isUser && get) {
            String id = user.group(1);
            send(ex, 200, "{\"id\":" + id + ",\"name\":\"user-" + id + "\"}");
        } else if (path.equals("/payments") && method.equals("POST")) {
            send(ex, 200, PAYMENT_REFUSED);
        } else if (path.equals("/fail") && get) {
            send(ex, 500, "{\"error\":\"boom\"}");
        } else if (path.equals("/big") && get) {
            int n = intParam(query, "bytes", 1024, MAX_BIG_BYTES);
            if (n < 0) {
                send(ex, 400, BAD_REQUEST);
            } else {
                send(ex, 200, bigBody(n), "application/json");
            }
        } else if (path.equals("/chunked") && get) {
            int parts = intParam(query, "parts", 3, MAX_PARTS);
            if (parts < 0) {
                send(ex, 400, BAD_REQUEST);
            } else {
                sendChunked(ex, parts);
            }
        } else if (path.equals("/slow") && get) {
            int ms = intParam(query, "ms", 100, MAX_SLEEP_MS);
            if (ms < 0) {
                send(ex, 400, BAD_REQUEST);
            } else {
                try {
                    Thread.sleep(ms);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                send(ex, 200, "{\"slept_ms\":" + ms + "}");
            }
        } else if (path.equals("/close-mid") && get) {
            closeMid(ex);
        } else if (KNOWN_PATHS.contains(path) || isUser) {
            send(ex, 405, "{\"error\":\"method_not_allowed\"}");
        } else {
            send(ex, 404, "{\"error\":\"not_found\"}");
        }
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: java JavaServer PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 1024);
        server.createContext("/", JavaServer::handle);
        AtomicInteger count = new AtomicInteger();
        ExecutorService workers = Executors.newFixedThreadPool(WORKERS, task -> {
            Thread t = new Thread(task, "http-worker-" + count.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(workers);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> server.stop(0)));
        server.start();
    }
}
