module tidings

go 1.24
