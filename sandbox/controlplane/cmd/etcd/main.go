// Command etcd is the etcd server, built through this module because `go install` of etcd's own
// main module fails on its replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
