"""Holds the `gr` stand-in; `gui_panels.launch` puts this directory on
``sys.path`` when GR is missing. (A package only so that it is installed
with ``gui_panels``.)"""
