/* fuzz_http.c: libFuzzer target for the request bodies of every route of the
 * real server application, in process. fuzz/http.lua starts the app on a
 * loopback port and says which request an input becomes; this driver sends
 * it over a socket, runs the event loop until the reply ends (the request
 * asks for Connection: close) and hands the reply back to the harness to
 * judge. Layer: fuzz (engine/bind + engine/host through fuzz_lua.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#define FUZZ_HARNESS "fuzz/http.lua"
#define FUZZ_LUA_CUSTOM_DRIVER
#include "fuzz_lua.h"

#define MAX_PUMPS 200000     /* 1 ms each: a reply that never ends is a hang */

static int g_port;

/* Calls H[name](args on the stack) under the traceback handler; a raise is a
 * finding. Leaves nres results. */
static void call(const char *name, int nargs, int nres)
{
    lua_State *L = g_L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, g_fn);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    lua_pushcfunction(L, fuzz_traceback);
    lua_insert(L, -(nargs + 2));
    int base = lua_gettop(L) - nargs - 1;
    if (lua_pcall(L, nargs, nres, base) != LUA_OK) {
        fprintf(stderr, "fuzz: finding in %s (%s):\n%s\n", FUZZ_HARNESS, name, lua_tostring(L, -1));
        abort();
    }
    lua_remove(L, base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_lua_init();
    lua_rawgeti(g_L, LUA_REGISTRYINDEX, g_fn);
    lua_getfield(g_L, -1, "port");
    g_port = (int)lua_tointeger(g_L, -1);
    lua_pop(g_L, 2);
    return 0;
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        perror("fuzz_http: connect");
        abort();
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = g_L;
    lua_pushlstring(L, (const char *)data, size);
    call("request", 1, 1);
    size_t n;
    const char *req = lua_tolstring(L, -1, &n);
    int fd = connect_server();
    size_t sent = 0;
    luaL_Buffer reply;
    luaL_buffinit(L, &reply);              /* above the request string */
    int done = 0;
    for (int i = 0; i < MAX_PUMPS && !done; i++) {
        if (sent < n) {
            ssize_t w = send(fd, req + sent, n - sent, MSG_NOSIGNAL);
            if (w > 0) sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != ENOTCONN) sent = n;   /* cut off: read what came */
        }
        call("pump", 0, 0);
        for (;;) {
            char buf[4096];
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r > 0) { luaL_addlstring(&reply, buf, (size_t)r); continue; }
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) done = 1;
            break;
        }
    }
    close(fd);
    if (!done) {
        fprintf(stderr, "fuzz_http: no complete reply after %d loop turns\n", MAX_PUMPS);
        abort();
    }
    luaL_pushresult(&reply);
    lua_pushlstring(L, (const char *)data, size);
    call("check", 2, 0);
    lua_pop(L, 1);                         /* the request */
    return 0;
}
