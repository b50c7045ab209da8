"""Test helpers shared by the test folders (a package: ``from support.X import Y``)."""
