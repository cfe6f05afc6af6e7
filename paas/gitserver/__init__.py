"""The git server: app repositories, receive-pack with live pre-receive output, smart HTTP
and the SSH forced command. The only package that imports dulwich."""
