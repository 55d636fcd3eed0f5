// test_cxx - C++'s operator new and delete, linked with -lhakmem
// (src/override_cxx.c): every form is hakmem's and serves from hakmem's
// tiers, a failed request throws std::bad_alloc (after the new-handler),
// the nothrow forms return nullptr, over-aligned types are aligned, blocks
// cross threads, and a double delete ends in a `hakmem:` abort.
// Prints one line per failed check; exits 1 if any failed.

#include <hakmem.h>

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

static int failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            std::fprintf(stderr, __VA_ARGS__);                                             \
            std::fputc('\n', stderr);                                                      \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

// The object that defines the operator the program calls.
static std::string defined_in(const void *fn)
{
    Dl_info info;
    if (!dladdr(fn, &info) || !info.dli_fname)
        return "?";
    return info.dli_fname;
}

static bool is_hakmem(const void *fn)
{
    return defined_in(fn).find("libhakmem") != std::string::npos;
}

// A block is hakmem's when hakmem reports a usable size for it (it aborts
// on foreign pointers, so only blocks known to be hakmem's would pass).
static void check_block(const void *p, size_t size, size_t align, const char *what)
{
    CHECK(p != nullptr, "%s returned nullptr", what);
    if (!p)
        return;
    CHECK(((uintptr_t)p & (align - 1)) == 0, "%s: %p not aligned to %zu", what, p, align);
    size_t usable = hak_malloc_usable_size(const_cast<void *>(p));
    CHECK(usable >= size, "%s: usable size %zu < %zu", what, usable, size);
}

struct alignas(128) Wide {
    unsigned char bytes[200];
};

static void symbols()
{
    // Casts through the exact overloads, so each name resolves as the
    // program's calls do.
    void *(*plain)(size_t) = &::operator new;
    void *(*array)(size_t) = &::operator new[];
    void *(*nothrow)(size_t, const std::nothrow_t &) noexcept = &::operator new;
    void *(*aligned)(size_t, std::align_val_t) = &::operator new;
    void (*del)(void *) noexcept = &::operator delete;
    void (*del_sized)(void *, size_t) noexcept = &::operator delete;
    void (*del_array)(void *) noexcept = &::operator delete[];
    void (*del_aligned)(void *, std::align_val_t) noexcept = &::operator delete;
    const void *fns[] = {(const void *)plain,   (const void *)array,     (const void *)nothrow,
                         (const void *)aligned, (const void *)del,       (const void *)del_sized,
                         (const void *)del_array, (const void *)del_aligned};
    for (const void *fn : fns)
        CHECK(is_hakmem(fn), "operator defined in %s, not libhakmem", defined_in(fn).c_str());
}

static void sizes_and_contents()
{
    // Every tier: tiny, pool, large.
    const size_t sizes[] = {0, 1, 8, 24, 32, 100, 1024, 1025, 4000, 40000, 100000, 3 << 20};
    for (size_t size : sizes) {
        unsigned char *a = new unsigned char[size];
        unsigned char *b = static_cast<unsigned char *>(::operator new(size));
        unsigned char *c = new (std::nothrow) unsigned char[size];
        check_block(a, size, 16, "new[]");
        check_block(b, size, 16, "operator new");
        check_block(c, size, 16, "new[](nothrow)");
        std::memset(a, 0xa1, size);
        std::memset(b, 0xb2, size);
        std::memset(c, 0xc3, size);
        bool intact = true;
        for (size_t i = 0; i < size; i++)
            intact = intact && a[i] == 0xa1 && b[i] == 0xb2 && c[i] == 0xc3;
        CHECK(intact, "contents of %zu-byte blocks overwritten", size);
        CHECK(size == 0 || (a != b && b != c && a != c), "blocks of %zu bytes overlap", size);
        delete[] a;
        ::operator delete(b, size); // sized
        delete[] c;
    }
    // new(0) gives distinct blocks, as malloc(0) does.
    void *z1 = ::operator new(0), *z2 = ::operator new(0);
    CHECK(z1 && z2 && z1 != z2, "operator new(0) gave %p and %p", z1, z2);
    ::operator delete(z1);
    ::operator delete(z2);
}

static void aligned()
{
    std::vector<Wide *> v;
    for (int i = 0; i < 1000; i++) {
        Wide *w = new Wide;
        check_block(w, sizeof(Wide), alignof(Wide), "new Wide");
        std::memset(w->bytes, i & 0xff, sizeof(w->bytes));
        v.push_back(w);
    }
    for (int i = 0; i < 1000; i++) {
        CHECK(v[i]->bytes[0] == (i & 0xff) && v[i]->bytes[199] == (i & 0xff),
              "aligned block %d overwritten", i);
        delete v[i]; // sized and aligned delete
    }
    Wide *arr = new Wide[7];
    check_block(arr, 7 * sizeof(Wide), alignof(Wide), "new Wide[7]");
    delete[] arr;
    void *p = ::operator new(5000, std::align_val_t(4096));
    check_block(p, 5000, 4096, "operator new(5000, align 4096)");
    ::operator delete(p, std::align_val_t(4096));
    p = ::operator new(64, std::align_val_t(256), std::nothrow);
    check_block(p, 64, 256, "operator new(64, align 256, nothrow)");
    ::operator delete(p, std::align_val_t(256), std::nothrow);
}

static int handler_calls;
static void handler()
{
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

// More than any machine has: hakmem refuses it at once.
static const size_t too_big = SIZE_MAX / 4;

static void failures_throw()
{
    bool thrown = false;
    try {
        void *volatile p = ::operator new(too_big);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "operator new(%zu) did not throw std::bad_alloc", too_big);

    thrown = false;
    try {
        void *volatile p = ::operator new[](too_big);
        ::operator delete[](p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "operator new[](%zu) did not throw std::bad_alloc", too_big);

    thrown = false;
    try {
        void *volatile p = ::operator new(too_big, std::align_val_t(64));
        ::operator delete(p, std::align_val_t(64));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "aligned operator new(%zu) did not throw std::bad_alloc", too_big);

    // The new-handler runs before the throw, as the standard requires.
    handler_calls = 0;
    thrown = false;
    std::set_new_handler(handler);
    try {
        void *volatile p = ::operator new(too_big);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    std::set_new_handler(nullptr);
    CHECK(thrown && handler_calls == 1, "new-handler: thrown %d, %d calls (want 1, 1)", thrown,
          handler_calls);

    void *p = ::operator new(too_big, std::nothrow);
    CHECK(p == nullptr, "nothrow operator new(%zu) returned %p", too_big, p);
    p = ::operator new[](too_big, std::nothrow);
    CHECK(p == nullptr, "nothrow operator new[](%zu) returned %p", too_big, p);
    p = ::operator new(too_big, std::align_val_t(64), std::nothrow);
    CHECK(p == nullptr, "nothrow aligned operator new(%zu) returned %p", too_big, p);
}

// Producers allocate, consumers delete: every block is deleted once by a
// thread other than its allocator, contents checked.
static void threads()
{
    const int pairs = 4, per = 20000;
    std::vector<std::vector<std::string *>> made(pairs);
    std::vector<std::thread> ts;
    for (int t = 0; t < pairs; t++)
        ts.emplace_back([&made, t] {
            for (int i = 0; i < per; i++)
                made[t].push_back(new std::string(16 + (i % 200), char('a' + t)));
        });
    for (auto &th : ts)
        th.join();
    ts.clear();
    std::atomic<int> bad{0};
    for (int t = 0; t < pairs; t++)
        ts.emplace_back([&made, &bad, t] {
            for (std::string *s : made[(t + 1) % pairs]) {
                char want = char('a' + (t + 1) % pairs);
                if (s->empty() || (*s)[0] != want || s->back() != want)
                    bad++;
                delete s;
            }
        });
    for (auto &th : ts)
        th.join();
    CHECK(bad == 0, "%d strings overwritten across threads", bad.load());
}

// A double delete is reported by hakmem, in a child.
static void double_delete()
{
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(false, "pipe failed");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        int *volatile p = new int(7); // volatile: the pair is not elided
        delete p;
        delete p;
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "double delete: child status %#x, not SIGABRT", status);
    CHECK(std::strstr(buf, "hakmem: ") && std::strstr(buf, "double free"),
          "double delete: stderr was \"%s\"", buf);
}

int main()
{
    symbols();
    sizes_and_contents();
    aligned();
    failures_throw();
    threads();
    double_delete();
    if (failures) {
        std::fprintf(stderr, "test_cxx: %d checks failed\n", failures);
        return 1;
    }
    std::printf("test_cxx: all checks passed\n");
    return 0;
}
