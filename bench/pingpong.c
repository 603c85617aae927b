/* An HTTP/1.1 request and response, over and over, on one loopback connection.
 *
 * bench/kernel_cost.py runs it pinned to one CPU: client and server then take turns, and the CPU
 * time they spend per request (user and system, read from getrusage) is what the kernel's work
 * per syscall costs them, without the scheduler noise of a throughput test. The server names
 * itself "pp-server" so that a probe can be told to watch it alone.
 *
 *   pingpong REQUESTS [CERT KEY]    (with CERT and KEY: over TLS, through OpenSSL)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char REQUEST[] =
    "GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pingpong\r\nAccept: */*\r\n\r\n";
static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    "{\"hello\":\"world\"}";

static double cpu_us(const struct rusage *u) {
    return (u->ru_utime.tv_sec + u->ru_stime.tv_sec) * 1e6 + u->ru_utime.tv_usec +
           u->ru_stime.tv_usec;
}

/* Plain or TLS reads and writes, so the loop below is the same either way. */
struct channel {
    int fd;
    SSL *ssl;
};

static int channel_write(struct channel *c, const char *buf, int len) {
    return c->ssl ? SSL_write(c->ssl, buf, len) : (int)write(c->fd, buf, len);
}

static int channel_read(struct channel *c, char *buf, int len) {
    return c->ssl ? SSL_read(c->ssl, buf, len) : (int)read(c->fd, buf, len);
}

static SSL *tls_over(int fd, int server, const char *cert, const char *key) {
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx || (server && (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
                            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)))
        return NULL;
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
        return NULL;
    return ssl;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    const char *cert = argc > 3 ? argv[2] : NULL;
    const char *key = argc > 3 ? argv[3] : NULL;
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, (void *)&addr, sizeof addr) || listen(listener, 1) ||
        getsockname(listener, (void *)&addr, &len)) {
        perror("pingpong: listen");
        return 1;
    }
    char buf[4096];
    pid_t server = fork();
    if (server == 0) {
        prctl(PR_SET_NAME, "pp-server");
        struct channel conn = {.fd = accept(listener, 0, 0)};
        setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (cert && !(conn.ssl = tls_over(conn.fd, 1, cert, key))) {
            fprintf(stderr, "pingpong: TLS accept failed\n");
            _exit(1);
        }
        while (channel_read(&conn, buf, sizeof buf) > 0)
            if (channel_write(&conn, RESPONSE, sizeof RESPONSE - 1) <= 0)
                break;
        _exit(0);
    }
    struct channel client = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    if (connect(client.fd, (void *)&addr, sizeof addr)) {
        perror("pingpong: connect");
        return 1;
    }
    setsockopt(client.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cert && !(client.ssl = tls_over(client.fd, 0, NULL, NULL))) {
        fprintf(stderr, "pingpong: TLS connect failed\n");
        return 1;
    }
    /* The handshake is not what is measured: count CPU from here. */
    struct rusage self0;
    getrusage(RUSAGE_SELF, &self0);
    for (long i = 0; i < n; i++) {
        if (channel_write(&client, REQUEST, sizeof REQUEST - 1) <= 0 ||
            channel_read(&client, buf, sizeof buf) <= 0) {
            perror("pingpong: exchange");
            return 1;
        }
    }
    if (client.ssl)
        SSL_shutdown(client.ssl);
    close(client.fd);
    int status;
    waitpid(server, &status, 0);
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    printf("%.3f\n", (cpu_us(&self) - cpu_us(&self0) + cpu_us(&children)) / n);
    return 0;
}
