//! Fails a failing build on purpose: tests/guests.rs checks that an error returned in a warm
//! call ends that call (status 1, the error's name on stderr) and its instance, and that the
//! next call, by a new instance, is answered.
const std = @import("std");
const tidings = @import("tidings.zig");

const Args = struct { results: ?i64 = null, results_text: []const u8 = "" };

/// Calls answered by this instance: the answer says it, so a reused instance shows.
var calls: u32 = 0;

fn format(gpa: std.mem.Allocator, a: Args) anyerror!?tidings.Message {
    calls += 1;
    if (a.results == 2) return error.BuildFailed;
    return tidings.plain(try std.fmt.allocPrint(gpa, "{s} (call {d})", .{ a.results_text, calls }));
}

pub fn main(init: std.process.Init) !void {
    return tidings.messageFormatter(init, Args, format);
}
