package raft

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/atoll-hosting/atoll"
)

// commandVersion is the first byte of every encoded command. A change to the
// encoding that old nodes cannot read gets a new version; Decode refuses
// versions it does not know instead of guessing.
const commandVersion = 1

// MaxCommandBytes is the largest encoded command Store.Apply proposes:
// hashicorp/raft's SuggestedMaxDataSize. Bigger entries delay heartbeats, so
// manifests go through the log in AddFiles batches of MaxBatchBytes.
const MaxCommandBytes = 512 << 10

// Encode returns the log entry for cmd: one version byte, one CommandType
// byte, then the command as JSON.
func Encode(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", atoll.ErrInvalid)
	}
	if v := reflect.ValueOf(cmd); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("%w: nil %T", atoll.ErrInvalid, cmd)
	}
	t := cmd.Type()
	if newCommand(t) == nil {
		return nil, fmt.Errorf("%w: type %d", ErrUnknownCommand, t)
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: encode command %d: %v", atoll.ErrInvalid, t, err)
	}
	b := make([]byte, 0, 2+len(body))
	b = append(b, commandVersion, byte(t))
	return append(b, body...), nil
}

// Decode parses a log entry made by Encode. It returns an error wrapping
// ErrUnknownCommand for an unknown version or type and ErrInvalid for a
// malformed body; it never panics, whatever the input. The command is
// returned as a value (CreateSite, not *CreateSite).
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: command of %d bytes", atoll.ErrInvalid, len(b))
	}
	if b[0] != commandVersion {
		return nil, fmt.Errorf("%w: version %d", ErrUnknownCommand, b[0])
	}
	t := CommandType(b[1])
	ptr := newCommand(t)
	if ptr == nil {
		return nil, fmt.Errorf("%w: type %d", ErrUnknownCommand, t)
	}
	if err := json.Unmarshal(b[2:], ptr); err != nil {
		return nil, fmt.Errorf("%w: command %d: %v", atoll.ErrInvalid, t, err)
	}
	return deref(ptr), nil
}

// newCommand returns a pointer to a zero command of type t, or nil if t is
// unknown.
func newCommand(t CommandType) any {
	switch t {
	case CmdCreateSite:
		return new(CreateSite)
	case CmdUpdateSite:
		return new(UpdateSite)
	case CmdDeleteSite:
		return new(DeleteSite)
	case CmdCreateDeploy:
		return new(CreateDeploy)
	case CmdAddFiles:
		return new(AddFiles)
	case CmdMarkReady:
		return new(MarkReady)
	case CmdPublish:
		return new(Publish)
	case CmdFailDeploy:
		return new(FailDeploy)
	case CmdPutNode:
		return new(PutNode)
	case CmdRemoveNode:
		return new(RemoveNode)
	case CmdSetAdminToken:
		return new(SetAdminToken)
	case CmdSetReplicas:
		return new(SetReplicas)
	case CmdCreateToken:
		return new(CreateToken)
	case CmdRevokeToken:
		return new(RevokeToken)
	case CmdPutCert:
		return new(PutCert)
	case CmdDeleteCert:
		return new(DeleteCert)
	case CmdSetFeatureLevel:
		return new(SetFeatureLevel)
	case CmdLockSite:
		return new(LockSite)
	case CmdPutACME:
		return new(PutACME)
	case CmdDeleteACME:
		return new(DeleteACME)
	case CmdLockACME:
		return new(LockACME)
	case CmdUnlockACME:
		return new(UnlockACME)
	}
	return nil
}

func deref(ptr any) Command {
	switch c := ptr.(type) {
	case *CreateSite:
		return *c
	case *UpdateSite:
		return *c
	case *DeleteSite:
		return *c
	case *CreateDeploy:
		return *c
	case *AddFiles:
		return *c
	case *MarkReady:
		return *c
	case *Publish:
		return *c
	case *FailDeploy:
		return *c
	case *PutNode:
		return *c
	case *RemoveNode:
		return *c
	case *SetAdminToken:
		return *c
	case *SetReplicas:
		return *c
	case *CreateToken:
		return *c
	case *RevokeToken:
		return *c
	case *PutCert:
		return *c
	case *DeleteCert:
		return *c
	case *SetFeatureLevel:
		return *c
	case *LockSite:
		return *c
	case *PutACME:
		return *c
	case *DeleteACME:
		return *c
	case *LockACME:
		return *c
	case *UnlockACME:
		return *c
	}
	panic(fmt.Sprintf("raft: deref of %T", ptr)) // unreachable: newCommand and deref list the same types
}

// BatchFiles splits a manifest into AddFiles commands for deploy, in the
// order given, each of which encodes (see Encode) to at most MaxBatchBytes.
// It returns nil for no files. It does not validate: a file whose encoding
// alone exceeds the limit (only possible with a path over MaxPathLen, which
// the FSM rejects anyway) gets a batch of its own.
func BatchFiles(deploy string, files []atoll.File) []AddFiles {
	if len(files) == 0 {
		return nil
	}
	// The encoding of AddFiles is the fixed envelope
	//   <version><type>{"deploy":<id>,"files":[<f1>,<f2>,...]}
	// and encoding/json writes each element exactly as it writes the File
	// alone, so sizes add up exactly.
	id, _ := json.Marshal(deploy) // a string always marshals
	envelope := 2 + len(`{"deploy":`) + len(id) + len(`,"files":[]}`)

	var out []AddFiles
	start, size := 0, envelope
	for i, f := range files {
		n := fileJSONLen(f)
		if i > start {
			n++ // the comma
		}
		if i > start && size+n > MaxBatchBytes {
			out = append(out, AddFiles{Deploy: deploy, Files: files[start:i:i]})
			start, size = i, envelope
			n-- // no comma before the first element
		}
		size += n
	}
	return append(out, AddFiles{Deploy: deploy, Files: files[start:len(files):len(files)]})
}

// fileJSONLen returns len(json.Marshal(f)), without marshaling in the
// common case of plain ASCII that encoding/json copies as is.
func fileJSONLen(f atoll.File) int {
	if jsonPlain(f.Path) && jsonPlain(f.Hash) {
		return len(`{"path":"","hash":""}`) + len(f.Path) + len(f.Hash)
	}
	b, _ := json.Marshal(f) // strings always marshal
	return len(b)
}

// jsonPlain reports whether encoding/json writes s unchanged inside quotes:
// printable ASCII other than '"', '\' and the HTML-escaped '<', '>', '&'.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
