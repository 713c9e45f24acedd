package serve

import (
	"path"
	"strings"
)

// fallbackContentType is sent for paths whose extension is not in
// contentTypes. With X-Content-Type-Options: nosniff, browsers then offer the
// file as a download instead of guessing (and possibly running) it.
const fallbackContentType = "application/octet-stream"

// contentTypes maps a lowercase file extension (with its dot) to the
// Content-Type the edge sends. It is a fixed table, not mime.TypeByExtension,
// so that every node answers the same whatever /etc/mime.types holds. Text
// types carry "; charset=utf-8".
var contentTypes = map[string]string{
	// Documents and text.
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".xhtml":       "application/xhtml+xml; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".vtt":         "text/vtt; charset=utf-8",
	".ics":         "text/calendar; charset=utf-8",
	".xml":         "application/xml; charset=utf-8",
	".xsl":         "application/xml; charset=utf-8",
	".rss":         "application/rss+xml; charset=utf-8",
	".atom":        "application/atom+xml; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".jsonld":      "application/ld+json",
	".webmanifest": "application/manifest+json",
	".yaml":        "application/yaml",
	".yml":         "application/yaml",
	".pdf":         "application/pdf",
	".wasm":        "application/wasm",

	// Images.
	".png":  "image/png",
	".apng": "image/apng",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".avif": "image/avif",
	".jxl":  "image/jxl",
	".svg":  "image/svg+xml",
	".ico":  "image/x-icon",
	".bmp":  "image/bmp",
	".tif":  "image/tiff",
	".tiff": "image/tiff",

	// Fonts.
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".eot":   "application/vnd.ms-fontobject",

	// Audio and video.
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".webm": "video/webm",
	".ogv":  "video/ogg",
	".mov":  "video/quicktime",
	".m3u8": "application/vnd.apple.mpegurl",
	".mp3":  "audio/mpeg",
	".m4a":  "audio/mp4",
	".ogg":  "audio/ogg",
	".oga":  "audio/ogg",
	".opus": "audio/ogg",
	".wav":  "audio/wav",
	".flac": "audio/flac",
	".aac":  "audio/aac",

	// 3D models.
	".glb":  "model/gltf-binary",
	".gltf": "model/gltf+json",

	// Archives.
	".zip": "application/zip",
	".gz":  "application/gzip",
	".tgz": "application/gzip",
	".tar": "application/x-tar",
	".7z":  "application/x-7z-compressed",
}

// contentType returns the Content-Type for a manifest path, chosen by the
// extension of its last segment (case-insensitive).
func contentType(p string) string {
	ext := path.Ext(p)
	if ext == "" {
		return fallbackContentType
	}
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct, ok := contentTypes[strings.ToLower(ext)]; ok {
		return ct
	}
	return fallbackContentType
}
