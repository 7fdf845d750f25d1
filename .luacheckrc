std = "lua54"
max_line_length = 120
files["tests/lua/"] = { std = "+busted" }
files["**/meta.lua"] = { ignore = { "212", "241", "631" } }
exclude_files = { "tests/.run/" }
