//! Uses the Zig SDK's helpers on a real build (tests/guests.rs compares the result with the
//! Rust SDK's answers for the same build).
const std = @import("std");
const tidings = @import("tidings.zig");

const Args = struct {
    build: struct { steps: []const tidings.Step = &.{} } = .{},
};

fn format(gpa: std.mem.Allocator, a: Args) !?tidings.Message {
    const failed = try tidings.failedSteps(gpa, a.build.steps);
    var names: std.ArrayList(u8) = .empty;
    for (failed, 0..) |s, i| {
        if (i > 0) try names.appendSlice(gpa, ", ");
        const one = try std.fmt.allocPrint(gpa, "{s} ({s})", .{ s.name, tidings.resultName(s.results) });
        try names.appendSlice(gpa, one);
    }
    const last = if (failed.len > 0 and failed[failed.len - 1].logs.len > 0)
        failed[failed.len - 1].logs[0]
    else
        tidings.Log{};
    const tail = try tidings.logTail(gpa, last, 2);
    return tidings.plain(try std.fmt.allocPrint(gpa, "{d} steps; failed: {s}\n{s}", .{ a.build.steps.len, names.items, tail }));
}

pub fn main(init: std.process.Init) !void {
    return tidings.messageFormatter(init, Args, format);
}
