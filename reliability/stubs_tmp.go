package main

type tmpfsResult struct{}

func (*tmpfsResult) tmpfsViolations() []string { return nil }
func runTmpfs(bin, dir string, logf func(string, ...any)) (*tmpfsResult, error) { return nil, nil }

type hostileResult struct{ Failures []string }

func runHostile(bin, dir string, logf func(string, ...any)) (*hostileResult, error) { return nil, nil }

type powerResult struct{}

func (*powerResult) powerViolations() []string { return nil }
func runPower(bin, dir string, n int, logf func(string, ...any)) (*powerResult, error) {
	return nil, nil
}

type backupResult struct{}

func (*backupResult) backupViolations() []string { return nil }
func runBackup(bin, dir string, n int, logf func(string, ...any)) (*backupResult, error) {
	return nil, nil
}
