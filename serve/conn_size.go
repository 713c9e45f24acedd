package serve

// DefaultWriteBufferSize is the edge server's write buffer
// (fasthttp.Server.WriteBufferSize), which NewListener needs to know.
const DefaultWriteBufferSize = 4096
