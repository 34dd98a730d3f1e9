package main

import (
	"compress/gzip"
	"io"
)

func gzipWriter(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }
