"""Foundations: the profile, device, seeds and folders (``runtime``); atomic files and a
lock per cache entry (``files``). Imports nothing else of attnlab."""
