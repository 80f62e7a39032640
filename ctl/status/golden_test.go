package status_test

// volatile are the JSON keys whose values differ between runs, backends
// or schema versions (the tests check those values themselves).
func volatile(key string) bool {
	switch key {
	case "seen", "token", "ttl_ms", "driver", "schema_current", "schema_latest",
		"prefix", "this_installation":
		return true
	}
	return false
}
