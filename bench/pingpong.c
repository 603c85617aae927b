/* An HTTP/1.1 request and response, over and over, on one loopback connection.
 *
 * bench/kernel_cost.py runs it pinned to one CPU: client and server then take turns, and the CPU
 * time they spend per request (user and system, read from getrusage) is what the kernel's work
 * per syscall costs them, without the scheduler noise of a throughput test. The server names
 * itself "pp-server" so that a probe can be told to watch it alone.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
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
        int conn = accept(listener, 0, 0);
        setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (read(conn, buf, sizeof buf) > 0)
            if (write(conn, RESPONSE, sizeof RESPONSE - 1) < 0)
                break;
        _exit(0);
    }
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (void *)&addr, sizeof addr)) {
        perror("pingpong: connect");
        return 1;
    }
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (long i = 0; i < n; i++) {
        if (write(client, REQUEST, sizeof REQUEST - 1) < 0 || read(client, buf, sizeof buf) <= 0) {
            perror("pingpong: exchange");
            return 1;
        }
    }
    close(client);
    int status;
    waitpid(server, &status, 0);
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    printf("%.3f\n", (cpu_us(&self) + cpu_us(&children)) / n);
    return 0;
}
