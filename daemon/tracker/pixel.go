package tracker

import _ "embed"

// pixelPNG is a transparent 1x1 PNG, the open pixel's response body.
//
//go:embed pixel.png
var pixelPNG []byte
