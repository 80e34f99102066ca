-- The todo app syncs all three tables. Todos merge per column (two devices editing different fields of the
-- same todo both win); lists and memberships: last writer wins.
select sync.enable('public.lists', conflict => 'lww');
select sync.enable('public.list_members', conflict => 'lww');
select sync.enable('public.todos', conflict => 'merge');
