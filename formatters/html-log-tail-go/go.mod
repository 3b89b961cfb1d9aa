module htmllogtail

go 1.24

require tidings v0.0.0

replace tidings => ../../guest-sdk/go
