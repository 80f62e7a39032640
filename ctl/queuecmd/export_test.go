package queuecmd

// NewDropCmd exposes `queue drop` with a replaceable action to the tests.
var NewDropCmd = newDropCmd
