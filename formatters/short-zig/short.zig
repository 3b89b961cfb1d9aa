//! short, in Zig: `STATUS: <Result>` (plain), like formatters/short; same cases.
//! Build: guest-sdk/build.sh zig
const std = @import("std");
const tidings = @import("tidings.zig");

/// The part of the messageFormatter arguments short reads.
const Args = struct { results_text: []const u8 = "" };

fn format(gpa: std.mem.Allocator, a: Args) anyerror!?tidings.Message {
    const title = try tidings.titleCase(gpa, a.results_text);
    return tidings.plain(try std.fmt.allocPrint(gpa, "STATUS: {s}", .{title}));
}

/// `Init.Minimal`: short reads neither the environment nor files, and Zig then sets up neither
/// before `main` (half the time of a fresh call).
pub fn main(init: std.process.Init.Minimal) !void {
    return tidings.messageFormatter(init, Args, format);
}
