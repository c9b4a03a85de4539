"""Places (provinces, communes, hamlets, zones), targeting, the directory, demo data and
routes; may import store/, web/, auth/, devices/, loa."""
