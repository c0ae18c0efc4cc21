# Freeze manifest of the same firmware without the agent (nothing frozen): the agent then
# comes as .mpy files, from a ROMFS image or loaded into the heap.
