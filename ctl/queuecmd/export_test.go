package queuecmd

// NewDropCmd exposes `queue drop` with a replaceable action to the tests.
var NewDropCmd = newDropCmd

// NewResetCmd exposes `queue reset` with a replaceable action to the tests.
var NewResetCmd = newResetCmd
