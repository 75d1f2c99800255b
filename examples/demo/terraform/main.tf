# A stand-in for "scale the standby region up": a resource whose creation has a
# visible side effect (a file), so tests can tell a plan (no file, no state)
# from an apply (file and state).
resource "terraform_data" "marker" {
  input = {
    path    = "${var.out_dir}/terraform.txt"
    message = var.message
  }
  # Provisioners run only on create: a new directory or message must replace the
  # resource, or the file would not be written.
  triggers_replace = [var.out_dir, var.message]

  provisioner "local-exec" {
    command = "mkdir -p \"$DIR\" && printf '%s\\n' \"$MESSAGE\" > \"$DIR/terraform.txt\""
    environment = {
      DIR     = var.out_dir
      MESSAGE = var.message
    }
  }
}
