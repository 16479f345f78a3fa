//go:build !linux

package netstack
