"""Small user apps that tests load: good ones to run, broken ones to fail loudly on."""
