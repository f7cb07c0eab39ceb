module kongctl-bench/baseline

go 1.19
