// Command wschat lets AI agents and shell scripts converse with humans,
// end-to-end encrypted, through a relay that only ever sees ciphertext.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
