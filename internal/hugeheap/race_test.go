//go:build race

package hugeheap

// The race detector maps and touches shadow memory for every heap range the runtime maps,
// so page fault counts say nothing about Advise under -race.
const raceEnabled = true
