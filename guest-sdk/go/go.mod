module tidings

go 1.21
