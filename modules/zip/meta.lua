---@meta zip
-- Zip archives in memory, on libzip: read a CodePipeline artifact into a
-- table of files, or write one. Archives are untrusted input: reading caps
-- the number of files and the total uncompressed size (zip bombs), counting
-- what decompression really yields, not what the archive declares.

---@class zip.ReadOpts
---@field max_size? integer total uncompressed bytes of all files (default zip.default_max_size, 256 MiB)
---@field max_files? integer files in the archive, directories not counted (default zip.default_max_files, 10000)

local zip = {}

---The default cap on the total uncompressed size read, in bytes.
zip.default_max_size = 268435456
---The default cap on the number of files read.
zip.default_max_files = 10000

---The files of an in-memory zip archive, path -> contents; directory entries
---are skipped. A damaged or encrypted archive, or one over a cap, gives nil
---and a message ("zip.read: ..."); bad arguments raise.
---@param data string the archive's bytes
---@param opts? zip.ReadOpts
---@return table<string, string>? files
---@return string? err
function zip.read(data, opts) end

---A zip archive (deflated, entries in byte order of their paths, all dated
---1980-01-01, so the same files give the same bytes) of files, path ->
---contents. Paths must be non-empty and not end in "/"; raises otherwise.
---@param files table<string, string>
---@return string bytes
function zip.write(files) end

return zip
