package keys_test

import (
	"fmt"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func ExampleParseInvite() {
	// An invite as printed by "wschat keygen" (callers trim surrounding
	// white space; the parser forgives nothing else).
	inv, err := keys.ParseInvite("WSCHAT1-M5O5K5HNO6ETCCZ5FZ3ID43ZBNDGY5Z3CUQ75TZWK54VQNY6UUX42FFTP6KW5FJRST7X7NZ3HWA5ZRLB2YNHKOAJJN6D4GTEH3S7HKQDMJXWEABKPE3UY")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("nick:", inv.Name)
	fmt.Println("routing id:", inv.Public.ID())

	// A mistyped invite is refused, with a message that says what to do.
	_, err = keys.ParseInvite("WSCHAT1-M5O5K5HNO6ETCCZ5FZ3ID43ZBNDGY5Z3CUQ75TZWK54VQNY6UUX42FFTP6KW5FJRST7X7NZ3HWA5ZRLB2YNHKOAJJN6D4GTEH3S7HKQDMJXWEABKPE3UI")
	fmt.Println(err)
	// Output:
	// nick: bob
	// routing id: 13fb93ec84f602e0
	// invite checksum mismatch: the invite was mistyped or changed; copy it again
}

func ExampleSafetyNumber() {
	var aliceX, aliceEd, bobX, bobEd [wire.KeySize]byte
	for i := range wire.KeySize {
		aliceX[i], aliceEd[i] = byte(i), byte(32+i)
		bobX[i], bobEd[i] = byte(96+i), byte(128+i)
	}
	alice, _ := wire.IdentityFromSeeds(aliceX, aliceEd)
	bob, _ := wire.IdentityFromSeeds(bobX, bobEd)

	// Both sides compute the same number, whichever way round.
	fmt.Println(keys.SafetyNumber(alice.Public(), bob.Public()))
	fmt.Println(keys.SafetyNumber(bob.Public(), alice.Public()))
	// Output:
	// 57589 10005 39493 88989 27147 24294
	// 57589 10005 39493 88989 27147 24294
}
