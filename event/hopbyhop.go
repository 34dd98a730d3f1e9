package event

// IsHopByHop reports whether a header (canonical name) belongs to the HTTP
// connection a message crossed rather than to the message: the
// connection-specific fields of RFC 9110 section 7.6.1 and RFC 9112
// (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade) and the framing
// fields that describe how the body crossed that connection
// (Content-Length, Transfer-Encoding, Trailer, Expect). The gateway does
// not store them and the forwarder does not send them on.
func IsHopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade",
		"Content-Length", "Transfer-Encoding", "Trailer", "Expect":
		return true
	}
	return false
}
