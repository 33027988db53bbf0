module github.com/arbor-db/arbor/go

go 1.22
