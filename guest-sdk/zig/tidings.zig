//! tidings.zig -- the Zig SDK for tidings formatters: WASI preview 1 commands built with Zig
//! 0.17 (`-target wasm32-wasi`), using `std.Io` and `std.json`.
//!
//! A formatter reads one JSON request on stdin and writes one JSON result on stdout (the ABI:
//! guest-sdk/README.md; the shapes: guest-sdk/schema/). `messageFormatter` reads and decodes
//! the request into the struct you name (unknown fields ignored: name only what you read),
//! calls your function, and writes its result:
//!
//!     const std = @import("std");
//!     const tidings = @import("tidings.zig");
//!
//!     const Args = struct { results_text: []const u8 = "" };
//!
//!     fn format(gpa: std.mem.Allocator, a: Args) !?tidings.Message {
//!         return tidings.plain(try std.fmt.allocPrint(gpa, "STATUS: {s}", .{a.results_text}));
//!     }
//!
//!     pub fn main(init: std.process.Init.Minimal) !void {
//!         return tidings.messageFormatter(init, Args, format);
//!     }
//!
//! `main` may take `std.process.Init` instead, when the formatter reads the environment or the
//! granted directory (/templates): Zig then makes the environment map and the list of preopened
//! directories before `main`, which doubles the time and memory of a fresh call.
//!
//! Return null to send nothing; return an error to fail the call (its name goes to stderr,
//! which tidings logs, and the exit status is 1).
const std = @import("std");

/// The messageFormatter result. `body` is a string for "plain" and "html".
pub const Message = struct {
    body: []const u8,
    type: []const u8,
    subject: ?[]const u8 = null,
};

/// A plain-text message.
pub fn plain(body: []const u8) Message {
    return .{ .body = body, .type = "plain" };
}

/// An HTML message.
pub fn html(body: []const u8) Message {
    return .{ .body = body, .type = "html" };
}

/// Python's str.title() on ASCII ("not finished" -> "Not Finished"), into a new buffer.
pub fn titleCase(gpa: std.mem.Allocator, s: []const u8) ![]u8 {
    const out = try gpa.dupe(u8, s);
    var in_word = false;
    for (out) |*c| {
        if (std.ascii.isAlphabetic(c.*)) {
            c.* = if (in_word) std.ascii.toLower(c.*) else std.ascii.toUpper(c.*);
            in_word = true;
        } else {
            in_word = false;
        }
    }
    return out;
}

/// Buildbot's name of a result code (a build's or a step's `results`): "failure", …; "not
/// finished" for null, "unknown" for another code. The request's `result_name` already says it
/// for the build.
pub fn resultName(code: ?i64) []const u8 {
    const names = [_][]const u8{ "success", "warnings", "failure", "skipped", "exception", "retry", "cancelled" };
    const c = code orelse return "not finished";
    return if (c >= 0 and c < names.len) names[@intCast(c)] else "unknown";
}

/// A log's text, as the request carries it when the reporter attached it (want_logs_content).
pub const LogContent = struct {
    firstline: i64 = 0,
    content: []const u8 = "",
};

/// A log of a step (`want_logs`). `type` is "s" for a stdio log.
pub const Log = struct {
    name: []const u8 = "",
    type: []const u8 = "",
    url: ?[]const u8 = null,
    content: ?LogContent = null,
};

/// A step of the build dict (`build.steps`: present when the reporter wants steps or logs).
/// Decode `build` into a struct with `steps: []const tidings.Step = &.{}` to use the helpers.
pub const Step = struct {
    number: i64 = 0,
    name: []const u8 = "",
    complete: bool = false,
    state_string: ?[]const u8 = null,
    results: ?i64 = null,
    logs: []const Log = &.{},
};

/// The steps whose result is FAILURE (2) or EXCEPTION (4), in order.
pub fn failedSteps(gpa: std.mem.Allocator, steps: []const Step) ![]const Step {
    var out: std.ArrayList(Step) = .empty;
    for (steps) |s| {
        const r = s.results orelse continue;
        if (r == 2 or r == 4) try out.append(gpa, s);
    }
    return out.toOwnedSlice(gpa);
}

/// The last `lines` lines of a log's text, joined by "\n", when the reporter attached it; ""
/// otherwise. A stdio log's lines lose their channel letter (h, o, e), as Buildbot shows them.
pub fn logTail(gpa: std.mem.Allocator, log: Log, lines: usize) ![]u8 {
    const content = log.content orelse return gpa.dupe(u8, "");
    var text = content.content;
    if (text.len == 0) return gpa.dupe(u8, "");
    if (text[text.len - 1] == '\n') text = text[0 .. text.len - 1];
    var all: std.ArrayList([]const u8) = .empty;
    defer all.deinit(gpa);
    var it = std.mem.splitScalar(u8, text, '\n');
    while (it.next()) |line| {
        const stdio = std.mem.eql(u8, log.type, "s");
        const strip = stdio and line.len > 0 and std.mem.indexOfScalar(u8, "hoe", line[0]) != null;
        try all.append(gpa, if (strip) line[1..] else line);
    }
    const from = if (all.items.len > lines) all.items.len - lines else 0;
    return std.mem.join(gpa, "\n", all.items[from..]);
}

/// Reads all of stdin (in a warm call, the request the host handed over: see below).
pub fn readRequest(io: std.Io, gpa: std.mem.Allocator) ![]u8 {
    if (warm_request) |request| return request;
    var buf: [4096]u8 = undefined;
    var r = std.Io.File.stdin().readerStreaming(io, &buf);
    return r.interface.allocRemaining(gpa, .unlimited);
}

/// Writes `value` as JSON, and a newline, on stdout.
pub fn writeResult(io: std.Io, value: anytype) !void {
    var buf: [4096]u8 = undefined;
    var w = std.Io.File.stdout().writerStreaming(io, &buf);
    try std.json.Stringify.value(value, .{ .emit_null_optional_fields = false }, &w.interface);
    try w.interface.writeAll("\n");
    try w.interface.flush();
}

// ABI v1's warm entry points (guest-sdk/README.md, "Warm instances"), exported by every
// WASI program that imports this file and has `pub fn main(init: std.process.Init)` or
// `pub fn main(init: std.process.Init.Minimal)`: a host that keeps the instance for many calls
// writes each request into a buffer from tidings_alloc_v1 and calls tidings_format_v1, which
// runs your `main` once more with `readRequest` answering from that buffer, and returns main's
// status (1 after an error, whose name goes to stderr as it does when main returns it).
// Nothing changes in your code; globals keep their values from one call to the next. Each call
// gets an arena of its own (freed after the call); `init.gpa`, `init.io`, the environment and
// the preopens are made once per instance.
const builtin = @import("builtin");
const root = @import("root");

/// The request of the warm call in progress, until the call ends.
var warm_request: ?[]u8 = null;

/// What `main`'s `std.process.Init` holds besides the arena: made by the first warm call.
var warm_threaded: std.Io.Threaded = undefined;
var warm_environ: std.process.Environ.Map = undefined;
var warm_preopens: std.process.Preopens = undefined;
var warm_ready = false;

/// What the program's `main` takes.
const MainTakes = enum { other, init, minimal };

fn mainTakes() MainTakes {
    if (!@hasDecl(root, "main")) return .other;
    const info = @typeInfo(@TypeOf(root.main));
    if (info != .@"fn") return .other;
    const params = info.@"fn".param_types;
    if (params.len != 1) return .other;
    if (params[0] == std.process.Init) return .init;
    if (params[0] == std.process.Init.Minimal) return .minimal;
    return .other;
}

comptime {
    if (builtin.os.tag == .wasi and builtin.cpu.arch.isWasm() and mainTakes() != .other) {
        @export(&warmAlloc, .{ .name = "tidings_alloc_v1" });
        @export(&warmFormat, .{ .name = "tidings_format_v1" });
    }
}

fn warmAlloc(len: usize) callconv(.c) [*]u8 {
    const buf = std.heap.wasm_allocator.alloc(u8, len) catch @panic("out of memory");
    return buf.ptr;
}

fn warmFormat(ptr: [*]u8, len: usize) callconv(.c) i32 {
    const gpa = std.heap.wasm_allocator;
    warm_request = ptr[0..len];
    defer {
        gpa.free(ptr[0..len]);
        warm_request = null;
    }
    const environ = std.process.Environ.Block.global;
    const minimal: std.process.Init.Minimal = .{
        .args = .{ .vector = {} },
        .environ = .{ .block = environ },
    };
    if (comptime mainTakes() == .minimal) return statusOfMain(root.main(minimal));
    if (!warm_ready) {
        warm_threaded = .init(gpa, .{
            .argv0 = .init(.{ .vector = {} }),
            .environ = .{ .block = environ },
        });
        warm_environ = std.process.Environ.createMap(.{ .block = environ }, gpa) catch |err| {
            std.log.err("cannot read the environment: {t}", .{err});
            return 1;
        };
        warm_preopens = std.process.Preopens.init(gpa) catch |err| {
            std.log.err("cannot read the preopened directories: {t}", .{err});
            return 1;
        };
        warm_ready = true;
    }
    var arena = std.heap.ArenaAllocator.init(gpa);
    defer arena.deinit();
    return statusOfMain(root.main(.{
        .minimal = minimal,
        .arena = &arena,
        .gpa = gpa,
        .io = warm_threaded.io(),
        .environ_map = &warm_environ,
        .preopens = warm_preopens,
    }));
}

/// The exit status a `main` that returned `result` has: an error's name goes to stderr, and the
/// status is 1.
fn statusOfMain(result: anytype) i32 {
    return switch (@typeInfo(@TypeOf(result))) {
        .error_union => if (result) |value| statusOf(value) else |err| {
            std.log.err("{t}", .{err});
            return 1;
        },
        else => statusOf(result),
    };
}

fn statusOf(value: anytype) i32 {
    return switch (@TypeOf(value)) {
        void => 0,
        u8 => value,
        else => @compileError("main must return void, u8 or an error union of them"),
    };
}

/// The request without its `build` member, closed after the member before it, when the host
/// wrote `build` last; null otherwise. `,"build":` can only be structural (a quote inside a
/// JSON string is escaped), and the text before it closed by one `}` is JSON only at the top
/// level, so a nested `build` key makes the head fail to decode (the caller then decodes it
/// all). Hosts before the one that writes `build` last wrote it right after `name`: their head
/// lacks `buildbot_url`, which comes before `build` now.
pub fn withoutBuild(gpa: std.mem.Allocator, raw: []const u8) !?[]u8 {
    const at = std.mem.indexOf(u8, raw, ",\"build\":") orelse return null;
    const head = raw[0..at];
    if (std.mem.indexOf(u8, head, "\"buildbot_url\":") == null and
        std.mem.indexOf(u8, head, "\"arg\":") == null) return null;
    const out = try gpa.alloc(u8, at + 1);
    @memcpy(out[0..at], head);
    out[at] = '}';
    return out;
}

test "withoutBuild takes the head of a request whose build is last" {
    const gpa = std.testing.allocator;
    const new = "{\"abi\":1,\"results_text\":\"failure\",\"buildbot_url\":\"u\",\"build\":{\"n\":3}}";
    const got = (try withoutBuild(gpa, new)).?;
    defer gpa.free(got);
    try std.testing.expectEqualStrings("{\"abi\":1,\"results_text\":\"failure\",\"buildbot_url\":\"u\"}", got);
    // As hosts before wrote it: build after name, the rest after it.
    const old = "{\"abi\":1,\"name\":\"b\",\"build\":{\"n\":3},\"results_text\":\"failure\",\"buildbot_url\":\"u\"}";
    try std.testing.expect((try withoutBuild(gpa, old)) == null);
}

/// The io of a program whose `main` takes `std.process.Init.Minimal`: made once per instance.
var minimal_threaded: ?std.Io.Threaded = null;

/// Runs `f` as the messageFormatter hook: decodes the request into `Args`, calls `f`, writes
/// its result (`null` for none). On any error, its name goes to stderr and the status is 1.
///
/// `init` is `main`'s: `std.process.Init`, or `std.process.Init.Minimal`, which is cheaper (Zig
/// makes neither an environment map nor the list of preopened directories before `main`: a
/// fresh call takes half the time and memory) and enough unless the formatter reads the
/// environment or the granted directory itself.
pub fn messageFormatter(
    init: anytype,
    comptime Args: type,
    comptime f: fn (std.mem.Allocator, Args) anyerror!?Message,
) !void {
    switch (@TypeOf(init)) {
        std.process.Init => return answer(init.io, init.arena.allocator(), Args, f),
        std.process.Init.Minimal => {
            const gpa = if (builtin.cpu.arch.isWasm()) std.heap.wasm_allocator else std.heap.page_allocator;
            if (minimal_threaded == null) minimal_threaded = .init(gpa, .{
                .argv0 = .init(init.args),
                .environ = init.environ,
            });
            var arena = std.heap.ArenaAllocator.init(gpa);
            defer arena.deinit();
            return answer(minimal_threaded.?.io(), arena.allocator(), Args, f);
        },
        else => @compileError("messageFormatter takes main's std.process.Init or std.process.Init.Minimal"),
    }
}

/// Reads the request, decodes it into `Args`, calls `f` and writes its result.
fn answer(
    io: std.Io,
    gpa: std.mem.Allocator,
    comptime Args: type,
    comptime f: fn (std.mem.Allocator, Args) anyerror!?Message,
) !void {
    const raw = try readRequest(io, gpa);
    const options: std.json.ParseOptions = .{ .ignore_unknown_fields = true };
    // Args without a `build` field skips the build dict anyway: when the host wrote it last,
    // decode the rest alone (most of a small formatter's work is skipping the build).
    const head = if (@typeInfo(Args) == .@"struct" and !@hasField(Args, "build"))
        try withoutBuild(gpa, raw)
    else
        null;
    const args = if (head) |h|
        std.json.parseFromSliceLeaky(Args, gpa, h, options) catch
            try std.json.parseFromSliceLeaky(Args, gpa, raw, options)
    else
        try std.json.parseFromSliceLeaky(Args, gpa, raw, options);
    const message = try f(gpa, args);
    try writeResult(io, message);
}

test "titleCase is Python's str.title on ASCII" {
    const gpa = std.testing.allocator;
    const cases = [_][2][]const u8{
        .{ "failure", "Failure" },
        .{ "not finished", "Not Finished" },
        .{ "unknown result 9", "Unknown Result 9" },
        .{ "it's", "It'S" },
    };
    for (cases) |c| {
        const got = try titleCase(gpa, c[0]);
        defer gpa.free(got);
        try std.testing.expectEqualStrings(c[1], got);
    }
}

test "resultName is Buildbot's" {
    try std.testing.expectEqualStrings("failure", resultName(2));
    try std.testing.expectEqualStrings("cancelled", resultName(6));
    try std.testing.expectEqualStrings("not finished", resultName(null));
    try std.testing.expectEqualStrings("unknown", resultName(9));
}

test "failedSteps and logTail read steps as Buildbot shows them" {
    const gpa = std.testing.allocator;
    const steps = [_]Step{
        .{ .name = "checkout", .results = 0 },
        .{ .name = "compile", .results = 2, .logs = &.{.{
            .type = "s",
            .content = .{ .content = "hstarting\nocompiling a\neerror: b\n" },
        }} },
        .{ .name = "running", .results = null },
        .{ .name = "upload", .results = 4 },
    };
    const failed = try failedSteps(gpa, &steps);
    defer gpa.free(failed);
    try std.testing.expectEqual(@as(usize, 2), failed.len);
    try std.testing.expectEqualStrings("compile", failed[0].name);
    try std.testing.expectEqualStrings("upload", failed[1].name);
    const tail = try logTail(gpa, failed[0].logs[0], 2);
    defer gpa.free(tail);
    try std.testing.expectEqualStrings("compiling a\nerror: b", tail);
    const none = try logTail(gpa, .{}, 5);
    defer gpa.free(none);
    try std.testing.expectEqualStrings("", none);
}
