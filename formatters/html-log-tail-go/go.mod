module htmllogtail

go 1.21

require tidings v0.0.0

replace tidings => ../../guest-sdk/go
