module sqlpool.dev/sqlpool

go 1.19
