package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/internal/durable"
)

// Data-dir formats. The data dir records its format in the file FORMAT
// (a decimal number and a newline); a data dir with a node-id and no
// FORMAT is format 1, written before formats existed. Start upgrades an
// older data dir in place, one idempotent step per format, FORMAT written
// last, so a kill at any point leaves a data dir the next start upgrades
// again from where it was; it refuses, writing nothing, a data dir whose
// format is newer than DataDirFormat.
//
//	1  node-id, token, scrub.json, raft/, blobs/ (temp files in blobs/tmp/), tmp/
//	2  FORMAT; the blob store's temp files in blobs/temp/, and blobs/tmp a
//	   regular file (blobTempGuard) that stops a binary of format 1, whose
//	   blob store makes blobs/tmp its temp folder, before it changes
//	   anything: it fails with "not a directory"
//
// A new format adds its step to upgradeSteps; a step never depends on
// what a later one does.
const DataDirFormat = 2

// ErrDataDirFormat is why a data dir is refused: its format is newer than
// this binary knows, or its FORMAT file cannot be read.
var ErrDataDirFormat = errors.New("data dir format")

const (
	formatFile = "FORMAT"
	// blobTempGuard is what blobs/tmp holds from format 2 on.
	blobTempGuard = "This data dir is in atoll data-dir format 2 or newer (see FORMAT): the binary that made \"blobs/tmp\" its temp folder is too old to open it. Run a newer atoll.\n"
)

// upgradeSteps[i] brings a data dir of format i+1 to format i+2.
var upgradeSteps = []func(dir string) error{
	upgradeTo2,
}

// dataDirFormat returns the format of the data dir dir: the number in its
// FORMAT file; 1 for a data dir with a node-id and no FORMAT; 0 for a new
// one (neither).
func dataDirFormat(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "node-id")); err == nil {
			return 1, nil
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrDataDirFormat, err)
	}
	format, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || format < 1 {
		return 0, fmt.Errorf("%w: %s holds %.20q, not a format number: restore it (%d for this atoll's format) or use another data dir",
			ErrDataDirFormat, filepath.Join(dir, formatFile), b, DataDirFormat)
	}
	return format, nil
}

// checkDataDirFormat refuses a data dir of a format newer than this
// binary knows, and returns its format. It writes nothing.
func checkDataDirFormat(dir, version string) (int, error) {
	format, err := dataDirFormat(dir)
	if err != nil {
		return 0, err
	}
	if format > DataDirFormat {
		return 0, fmt.Errorf("%w: data dir %s is format %d, and this atoll (%s) knows formats up to %d: run a newer atoll on it; nothing was changed",
			ErrDataDirFormat, dir, format, version, DataDirFormat)
	}
	return format, nil
}

// upgradeDataDir brings dir from format to DataDirFormat (a new data dir,
// format 0, gets the current layout), then writes FORMAT.
func upgradeDataDir(dir string, format int) error {
	for f := max(format, 1); f < DataDirFormat; f++ {
		if err := upgradeSteps[f-1](dir); err != nil {
			return fmt.Errorf("upgrade data dir from format %d to %d: %w", f, f+1, err)
		}
	}
	if err := durable.WriteFile(filepath.Join(dir, formatFile), []byte(strconv.Itoa(DataDirFormat)+"\n"), 0o640); err != nil {
		return fmt.Errorf("write data dir format: %w", err)
	}
	return nil
}

// upgradeTo2 replaces blobs/tmp, the temp folder of format 1's blob store
// (whose content the store would remove at open anyway), with the guard
// file. Each part is idempotent: a folder left half removed is removed
// again, a guard already written is written again.
func upgradeTo2(dir string) error {
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	if err := removeWriteLeftovers(blobs); err != nil { // a guard whose write was cut short
		return err
	}
	guard := filepath.Join(blobs, "tmp")
	if fi, err := os.Lstat(guard); err == nil && fi.IsDir() {
		if err := os.RemoveAll(guard); err != nil {
			return err
		}
	}
	if err := durable.WriteFile(guard, []byte(blobTempGuard), 0o444); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(blobs, blobstore.TempFolder), 0o755)
}
