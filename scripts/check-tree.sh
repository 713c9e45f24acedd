#!/usr/bin/env bash
# Checks that need no build: every tracked Go file is gofmt-clean, and no
# tracked file is an executable (an ELF, Mach-O or PE binary, or any file
# with an executable bit that is not a script). Build outputs belong in
# .gitignore, never in git. `make lint` and CI (.ci/run) run it.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	status=1
fi
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue
	magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
		echo "tracked executable: $f (build outputs must not be in git)" >&2
		status=1
		continue
		;;
	esac
	if [ -x "$f" ] && [ "$(head -c 2 "$f")" != "#!" ]; then
		echo "tracked file with the executable bit and no #! line: $f" >&2
		status=1
	fi
done < <(git ls-files -z)
exit $status
