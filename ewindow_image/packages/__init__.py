# SPDX-License-Identifier: MIT
"""Source packages: software the image needs that Debian does not carry (PeerVPN, cjdns),
built from pinned upstream source like Buildroot or OpenWrt would, into real .deb files.

The pipeline of one package, one module each:

- ``recipe``: ``packages/<name>/package.yaml`` and its patches, read and checked;
- ``source``: the upstream archive from a mirror or upstream, verified against its pin
  (commit and unpacked tree) before anything uses it;
- ``toolchain``: Debian's compiler for the target (a cross compiler for arm64) and a sysroot
  of the target's libraries, unpacked by mmdebstrap without emulation;
- ``compiling``: unpack, patch, run the recipe's build steps, stage the installed files;
- ``debian``: the .deb: computed ``Depends`` (ELF ``NEEDED`` → the sysroot's shlibs),
  control file, copyright, ``dpkg-deb``;
- ``service``: keys, the package cache, and the one entry point the build and the CLI use.

May import: ``config``, ``apt`` (source lines, version resolution) and the shared plumbing.
Nothing here imports the build (stages) or the image code; the build imports this.
"""
