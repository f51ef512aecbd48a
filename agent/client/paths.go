package client

import "net/url"

// keyPath is the API path of key under route ("/v1/counters/", say). The
// whole key is one escaped path segment (a '/' in it becomes %2F), so no
// proxy or router can split or clean it; the keys "." and ".." are escaped
// in full, or HTTP path cleaning would take them for directory steps. The
// peer unescapes the path and takes everything after route as the key.
func keyPath(route, key string) string {
	switch key {
	case ".":
		return route + "%2E"
	case "..":
		return route + "%2E%2E"
	}
	return route + url.PathEscape(key)
}
