package main

type tmpfsResult struct{}

func (*tmpfsResult) tmpfsViolations() []string { return nil }
func runTmpfs(bin, dir string, logf func(string, ...any)) (*tmpfsResult, error) { return nil, nil }


type powerResult struct{}

func (*powerResult) powerViolations() []string { return nil }
func runPower(bin, dir string, n int, logf func(string, ...any)) (*powerResult, error) {
	return nil, nil
}

