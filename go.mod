module github.com/privstats/privstats

go 1.26.0
