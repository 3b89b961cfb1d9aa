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
//!     pub fn main(init: std.process.Init) !void {
//!         return tidings.messageFormatter(init, Args, format);
//!     }
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

/// Reads all of stdin.
pub fn readRequest(io: std.Io, gpa: std.mem.Allocator) ![]u8 {
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

/// Runs `f` as the messageFormatter hook: decodes the request into `Args`, calls `f`, writes
/// its result (`null` for none). On any error, its name goes to stderr and the status is 1.
pub fn messageFormatter(
    init: std.process.Init,
    comptime Args: type,
    comptime f: fn (std.mem.Allocator, Args) anyerror!?Message,
) !void {
    const gpa = init.arena.allocator();
    const raw = try readRequest(init.io, gpa);
    const args = try std.json.parseFromSliceLeaky(Args, gpa, raw, .{ .ignore_unknown_fields = true });
    const message = try f(gpa, args);
    try writeResult(init.io, message);
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
