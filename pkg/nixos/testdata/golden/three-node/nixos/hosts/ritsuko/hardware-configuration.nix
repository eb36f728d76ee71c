# nerv:placeholder-hardware-configuration
# A generic placeholder so that the flake evaluates before the machine is known. `kubectl nerv
# join` replaces it with the machine's own `nixos-generate-config --no-filesystems
# --show-hardware-config`; `kubectl nerv generate` never overwrites that (without --force).
# File systems are not declared here: disk-config.nix (disko) owns them.
{ lib, modulesPath, ... }:
{
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];

  boot.initrd.availableKernelModules = [
    "ahci"
    "nvme"
    "sd_mod"
    "usb_storage"
    "usbhid"
    "xhci_pci"
  ];
  boot.kernelModules = [ "kvm-intel" ];
  hardware.cpu.intel.updateMicrocode = lib.mkDefault true;
  hardware.enableRedistributableFirmware = lib.mkDefault true;
  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";
}
