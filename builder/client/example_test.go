package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/atoll-hosting/atoll/builder/client"
)

// Deploy a directory, watch its progress, and tell the API's refusals
// apart by their status.
func Example() {
	api, token, stop := exampleServer() // an Atoll API on loopback, for this example
	defer stop()
	dir := exampleSite() // index.html, about/index.html, css/site.css
	defer os.RemoveAll(dir)

	ctx := context.Background()
	// One node, or several separated by commas: a node that cannot be
	// reached hands the call to the next.
	c := client.New(api, token)
	if _, err := c.CreateSite(ctx, "blog", nil, 0); err != nil {
		log.Fatal(err)
	}
	d, err := c.DeployDir(ctx, dir, "blog", client.DeployOptions{
		Publish:     true, // make it live; false only finalizes it (preview URL)
		Concurrency: 4,    // files hashed or uploaded at once
		Progress: func(p client.Progress) {
			if p.Files == p.FilesTotal {
				fmt.Printf("%s: %d files, %d bytes\n", p.Phase, p.Files, p.Bytes)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.State, "with", d.Files, "files,", len(d.Required), "uploaded")

	// A refused call is a *client.Error: the HTTP status, the server's
	// one-line message and, for a publish refused for want of blobs,
	// their hashes (ae.Missing).
	_, err = c.Site(ctx, "shop")
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Message)
	}
	// Output:
	// hash: 3 files, 46 bytes
	// upload: 3 files, 46 bytes
	// published with 3 files, 3 uploaded
	// 404 site "shop" does not exist
}
